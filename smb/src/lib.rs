//! SMB2/3 server (protocol only).
