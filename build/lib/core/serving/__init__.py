"""The prediction service: a FastAPI app serving the champion model (`python -m core serve`).

`predictor` holds the one prediction function the API and the console's in-process mode share;
`holder` loads and hot-swaps the champion; `inference_log` records every prediction for drift
monitoring; `metrics` defines what Prometheus scrapes; `app` / `routes` / `deps` / `schemas` are the
HTTP layer. Only `app`, `routes`, `deps` and `schemas` import FastAPI.
"""
