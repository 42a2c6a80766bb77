"""MLflow "model from code" entry: MLflow copies and runs this file when it saves or loads the model.

Never imported by the platform itself (its last line registers the model with MLflow, which is the
point of the file). Logging the model from a file instead of a pickled object keeps the stored
model readable and avoids cloudpickling the wrapper class.
"""

import mlflow

from core.models.pyfunc import ProductPyfunc

mlflow.models.set_model(ProductPyfunc())
