"""Review: the queues of products worth a human look, why the model answered as it did, and the scan
for suspicious training labels. Decisions are recorded in `core.storage.corrections`."""
