"""dask-kube-jobs: run Dask batch work on Kubernetes, from kubectl, Python and Airflow."""

__version__ = "0.1.0.dev0"
