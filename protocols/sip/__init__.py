"""SIP for sipsync: messages (over aiosipua), transports, transactions, the asyncio driver,
user agents and digest."""
