"""cotenancy.predict: features, pairwise conflict risk, demand forecasts, anomalies.

XGBoost's OpenMP threads busy-wait between parallel regions by default; on a small shared machine
(2 cores, a control loop, a database) that spinning starves everything else and made training
~40x slower in our measurements. Passive waiting is set here, before xgboost loads its runtime,
unless the operator chose otherwise.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
