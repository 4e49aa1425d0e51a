"""Test connection (A14): try incoming and outgoing separately, say exactly what is wrong.

Public API (implemented in submodules, re-exported here):

- ``DiagnosisCode``: the stable codes the UI, API and CLI show.
- ``Diagnosis``: ``ok``, ``code``, ``detail`` (English, technical, for logs),
  ``params`` (facts the user-facing text needs, e.g. the right security mode).
- ``check_incoming(IncomingCheck) -> Diagnosis``
- ``check_outgoing(OutgoingCheck) -> Diagnosis``
- ``port_security_warning(Protocol, port, Security) -> PortWarning | None``
"""

from postroom.mail.diagnostics.checks import check_incoming, check_outgoing
from postroom.mail.diagnostics.codes import Diagnosis, DiagnosisCode
from postroom.mail.diagnostics.mapping import code_for, diagnose_error
from postroom.mail.diagnostics.ports import PortWarning, PortWarningCode, port_security_warning

__all__ = [
    "Diagnosis",
    "DiagnosisCode",
    "PortWarning",
    "PortWarningCode",
    "check_incoming",
    "check_outgoing",
    "code_for",
    "diagnose_error",
    "port_security_warning",
]
