"""Results (plain dataclasses), errors, and their pandas form."""
import dataclasses
import datetime
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

# gRPC's numbers, as in client/psfleet_client.h and proto/psfleet.proto.
STATUS_NAMES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT",
                4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND", 6: "ALREADY_EXISTS",
                7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
                10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL",
                14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED"}


class PsfleetError(Exception):
    """A call failed. code is the status number (gRPC's, e.g. 5), status its
    name ("NOT_FOUND"), message the server's or the client's reason, symbol the
    symbol asked for when there was one."""

    def __init__(self, code, message, symbol=None):
        self.code = int(code)
        self.status = STATUS_NAMES.get(self.code, f"STATUS_{self.code}")
        self.message = message
        self.symbol = symbol
        super().__init__(f"{self.status}: {message}" if message else self.status)


class InvalidArgument(PsfleetError):
    """Malformed symbol, as_of or recent bars; a bad URL or TLS file."""


class DeadlineExceeded(PsfleetError):
    """No answer (or no connection) within the timeout."""


class NotFound(PsfleetError):
    """Unknown symbol, or a symbol of another shard when calling an inferer."""


class ResourceExhausted(PsfleetError):
    """Out of memory, or a request over the server's limits."""


class FailedPrecondition(PsfleetError):
    """Not enough history before as_of for the model's features."""


class Internal(PsfleetError):
    """A bug or an unexpected answer."""


class Unavailable(PsfleetError):
    """Nothing serves at the URL, no model yet, or no healthy inferer."""


class Unauthenticated(PsfleetError):
    """Wrong or missing token, or the TLS handshake failed."""


_ERRORS = {3: InvalidArgument, 4: DeadlineExceeded, 5: NotFound, 8: ResourceExhausted,
           9: FailedPrecondition, 13: Internal, 14: Unavailable, 16: Unauthenticated}


def error(code, message, symbol=None):
    """The exception for status code (a PsfleetError subclass when there is one)."""
    return _ERRORS.get(int(code), PsfleetError)(code, message, symbol)


def for_date(as_of):
    """The day a prediction made from the bar of as_of is for: the next business
    day (Mon-Fri), as `psfleet predict` prints it. "" when as_of is ""."""
    if not as_of:
        return ""
    d = datetime.date.fromisoformat(as_of) + datetime.timedelta(days=1)
    while d.weekday() >= 5:
        d += datetime.timedelta(days=1)
    return d.isoformat()


@dataclass(frozen=True)
class TLS:
    """TLS settings for a tls+tcp:// URL (docs/security.md). ca_file: the CA that
    signed the server (None: the server is not verified); server_name: the name
    its certificate carries (None: the URL's host); cert_file and key_file: this
    client's certificate for mutual TLS (both or neither)."""
    ca_file: Optional[str] = None
    server_name: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None


@dataclass(frozen=True)
class Bar:
    """A bar the fleet has not seen yet (PredictRequest.recent). date is
    YYYY-MM-DD (a str, datetime.date or pandas Timestamp); close must be > 0;
    open/high/low/volume may be None (unknown)."""
    date: object
    close: float
    open: Optional[float] = None
    high: Optional[float] = None
    low: Optional[float] = None
    volume: Optional[float] = None


@dataclass(frozen=True)
class Row:
    """A new daily bar for Client.ingest: symbol, date (YYYY-MM-DD, a date or a
    Timestamp), close (> 0); open/high/low/volume may be None (unknown)."""
    symbol: str
    date: object
    close: float
    open: Optional[float] = None
    high: Optional[float] = None
    low: Optional[float] = None
    volume: Optional[float] = None


@dataclass(frozen=True)
class IngestResult:
    """One row's answer to Client.ingest: status 0 (OK) when stored; else
    ALREADY_EXISTS (6: a bar of that date is stored; message says whether it
    is identical), INVALID_ARGUMENT, FAILED_PRECONDITION (older than the last
    date, another shard), UNAVAILABLE ... with nothing changed."""
    symbol: str
    date: str
    status: int
    message: str

    @property
    def ok(self):
        return self.status == 0

    @property
    def status_name(self):
        return STATUS_NAMES.get(self.status, f"STATUS_{self.status}")


class IngestResults(list):
    """The answers of Client.ingest, one IngestResult per row in order, with
    what the call says as a whole: accepted (rows stored), model_version (the
    version serving when they were stored), finetune_steps (steps per round of
    fine-tuning; 0 = off) and finetune_rows (fine-tuning rows the bars made)."""

    def __init__(self, items=(), accepted=0, model_version=0, finetune_steps=0,
                 finetune_rows=0):
        super().__init__(items)
        self.accepted = accepted
        self.model_version = model_version
        self.finetune_steps = finetune_steps
        self.finetune_rows = finetune_rows

    @property
    def failed(self):
        return [r for r in self if r.status != 0]

    def to_frame(self):
        return to_frame(self)


@dataclass(frozen=True)
class Prediction:
    """One symbol's prediction. prediction is in the target's units
    (next_return: a return, next_close: a price, next_direction: the
    probability of a rise); predicted_close the price it implies (0 for
    next_direction); as_of and last_close the date and close of the bar it
    starts from; for_date the next business day after as_of. In a batch a
    symbol without a prediction has status != 0, its reason in message, and
    NaN / "" elsewhere."""
    symbol: str
    prediction: float
    predicted_close: float
    last_close: float
    as_of: str
    for_date: str
    target: str
    model_version: int
    status: int = 0
    message: str = ""

    @property
    def ok(self):
        return self.status == 0

    @property
    def status_name(self):
        return STATUS_NAMES.get(self.status, f"STATUS_{self.status}")

    def raise_for_status(self):
        """Raise this item's PsfleetError when it has no prediction."""
        if self.status != 0:
            raise error(self.status, self.message, self.symbol)
        return self


class Predictions(list):
    """The answers of predict_batch, in the order of the symbols asked (a list of
    Prediction), with their DataFrame form."""

    @property
    def failed(self):
        return [p for p in self if p.status != 0]

    def to_frame(self):
        return to_frame(self)


@dataclass(frozen=True)
class ModelInfo:
    """The model an inferer serves (through the gateway: one of them)."""
    model_version: int
    trained_steps: int
    model: str
    target: str
    features: List[str]
    tensors: List[str]
    shard_versions: List[int]
    test_rmse: float
    test_mae: float
    naive_rmse: float
    symbols: int
    shard: int
    shards: int
    node: str


@dataclass(frozen=True)
class WorkerStatus:
    worker: str
    clock: int
    live: bool
    last_seq: int
    pushes: int


@dataclass(frozen=True)
class NodeStatus:
    """What the node at the client's URL says about itself (Admin/Status):
    extra holds its role's facts (an inferer: shard, symbols, ...; the gateway:
    each replica and the route)."""
    node: str
    role: str
    ready: bool
    model_version: int
    uptime_seconds: float
    extra: Dict[str, str] = field(default_factory=dict)
    workers: List[WorkerStatus] = field(default_factory=list)


def _pandas():
    try:
        import pandas
    except ImportError as e:
        raise ImportError("psfleet: DataFrame results need pandas "
                          "(apt-get install python3-pandas, or pip install pandas)") from e
    return pandas


def to_frame(obj):
    """A pandas DataFrame of a Prediction, a list of them (one row each, in
    order; as_of and for_date as datetime64, NaT where a symbol failed), a
    ModelInfo or a NodeStatus (one row), or IngestResults (one row per row). Raises ImportError without pandas."""
    pd = _pandas()
    if isinstance(obj, (Prediction, ModelInfo, NodeStatus, IngestResult)):
        obj = [obj]
    rows = list(obj)
    if rows and not all(isinstance(r, type(rows[0])) for r in rows):
        raise TypeError("to_frame: rows of one kind only")
    kind = type(rows[0]) if rows else Prediction
    if not dataclasses.is_dataclass(kind):
        raise TypeError(f"to_frame: cannot convert {kind.__name__}")
    cols = [f.name for f in dataclasses.fields(kind)]
    df = pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=cols)
    if kind is Prediction:
        for c in ("as_of", "for_date"):
            df[c] = pd.to_datetime(df[c].where(df[c] != ""), format="%Y-%m-%d")
        df["status"] = df["status"].astype("int64")
    return df


