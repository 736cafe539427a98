"""The DAG steps: one module per step, each with a typed `run()` (see textcnn.cli)."""
