"""What serving and training share about Hugging Face models."""
