"""The dock's screen (issue 17): tiles per slot for a kiosk browser, live over SSE."""
