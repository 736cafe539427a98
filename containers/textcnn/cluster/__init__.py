"""What the steps do against the Kubernetes API: reading objects, judging TFJobs, TrainJobs
and InferenceServices."""
