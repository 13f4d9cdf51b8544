"""Fine-tuning as part of the app: review data sets to train on, training jobs as the API starts
and publishes them. The training itself runs in worker processes (``app.jobs.finetune`` starts
``app.finetune`` there); nothing here imports the trainer."""
