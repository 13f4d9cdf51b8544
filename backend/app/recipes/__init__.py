"""What a fine-tuning run is made of, without torch: its settings and their validation (one
definition for the command line and the API), the review files it reads and their report, and
the memory plan. Shared by the trainer (``app.finetune``) and the app, which must never import
the trainer itself."""
