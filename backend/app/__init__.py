"""rag: Korean-first RAG on PostgreSQL + pgvector, and LoRA / QLoRA fine-tuning."""
