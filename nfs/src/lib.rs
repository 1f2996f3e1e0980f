//! ONC RPC + XDR, NFSv4.1/4.2 and NFSv3+MOUNT servers (protocol only).
