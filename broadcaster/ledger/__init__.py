"""The ledger (SQLAlchemy 2): readings, alerts, deliveries, audit; the source of truth."""

from broadcaster.ledger.models import (
    FINAL,
    OPEN,
    STATES,
    Alert,
    ApiToken,
    AuditEntry,
    ConsoleSession,
    ConsoleUser,
    ContactFlag,
    Delivery,
    EndpointContact,
    ReadingRow,
)
from broadcaster.ledger.store import DeliveryJob, Ledger

__all__ = ["FINAL", "OPEN", "STATES", "Alert", "ApiToken", "AuditEntry", "ConsoleSession", "ConsoleUser",
           "ContactFlag", "Delivery", "DeliveryJob", "EndpointContact", "Ledger", "ReadingRow"]
