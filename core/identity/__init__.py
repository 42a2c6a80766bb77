"""Who is asking and what they may do: roles from the identity provider's claims or service tokens, one
permission check used by the console, the API, the CLI and the flows, and the audit trail it writes."""
