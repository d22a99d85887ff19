"""The network (PIUNet), its training, model files, inference and test-time finetuning."""
