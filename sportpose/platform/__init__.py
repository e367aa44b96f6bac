"""Where the work runs: the Ray runtime, job submission to clusters, the MLflow server and the dashboards."""
