"""The local stack behind `make console`: one supervisord running a Prefect server and worker, the
prediction API and the console (`python -m core up | down | status`)."""
