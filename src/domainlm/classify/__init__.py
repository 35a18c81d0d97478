"""classify: text classification on top of a corpus or a trained model (`domainlm finetune`)."""
