"""What a run's journal (events.schema.json, one event a line) shows once it is over, or while it goes on."""
