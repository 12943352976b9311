"""psfleet: predictions from a psfleet fleet in Python (docs/client.md).

    import psfleet
    with psfleet.Client("tcp://127.0.0.1:7400", token_file="token") as c:
        p = c.predict("S0000")
        df = c.predict_batch(["S0000", "S0001"]).to_frame()

Built on libpsfleet_client through ctypes: set PSFLEET_CLIENT_LIB to its path
when it is not on the system's library path.
"""
from ._client import Client
from ._native import library_path, load_library
from ._types import (TLS, Bar, DeadlineExceeded, FailedPrecondition, IngestResult,
                     IngestResults, Internal, InvalidArgument, ModelInfo, NodeStatus, NotFound,
                     Prediction, Predictions, PsfleetError, ResourceExhausted, Row,
                     Unauthenticated, Unavailable, WorkerStatus, for_date, to_frame)

__version__ = "0.1.0"

__all__ = ["Client", "TLS", "Bar", "Row", "IngestResult", "IngestResults", "Prediction", "Predictions", "ModelInfo", "NodeStatus",
           "WorkerStatus", "PsfleetError", "InvalidArgument", "DeadlineExceeded", "NotFound",
           "ResourceExhausted", "FailedPrecondition", "Internal", "Unavailable",
           "Unauthenticated", "to_frame", "for_date", "load_library", "library_path"]
