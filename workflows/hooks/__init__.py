"""What the local cluster's controllers run for this project: the hooks that stand in for
its images (the controllers themselves know nothing of textcnn)."""
