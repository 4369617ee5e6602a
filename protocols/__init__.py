"""Wire protocols: sans-I/O cores with asyncio glue beside them."""
