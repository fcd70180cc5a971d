"""What a run leaves for programs and for later: its events as JSON lines, a JUnit report, a picture."""
