"""Test connection (A14): try incoming and outgoing separately, say exactly what is wrong.

Public API (implemented in submodules, re-exported here):

- ``DiagnosisCode``: the stable codes the UI, API and CLI show.
- ``Diagnosis``: ``ok``, ``code``, ``detail`` (English, technical, for logs),
  ``params`` (facts the user-facing text needs, e.g. the right security mode).
- ``check_incoming(IncomingCheck) -> Diagnosis``
- ``check_outgoing(OutgoingCheck) -> Diagnosis``
- ``port_security_warning(Protocol, port, Security) -> PortWarning | None``
"""
