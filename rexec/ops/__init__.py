"""What rexecd does for its operators beside serving clients: HTTP health and
metrics, UDP discovery, reload. Observers: never in the data path."""
