"""The Dask operator: a kopf controller for DaskCluster, DaskWorkerGroup, DaskJob and DaskAutoscaler.

Run it with ``dask-kube-jobs operator`` or ``python -m dask_kube_jobs.operator``. Importing this
package registers nothing: the kopf handlers live in ``dask_kube_jobs.operator.handlers`` and are
imported by the entry point, so tools may import the names and builders without side effects.
"""
