"""Transport: request rates and retries, shared by every client of the network."""
