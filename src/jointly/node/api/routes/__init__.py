"""One router per resource; each route authenticates, checks the role, calls one service method."""
