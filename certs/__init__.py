"""The PKI and secrets at rest: key files with safe permissions, the CA, enrollment, renewal."""
