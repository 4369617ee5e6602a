"""SIP for sipsync: messages (over aiosipua), transports, transactions, digest."""
