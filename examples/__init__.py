"""Reference products built on ``shared``: systems under test for the chaos playbooks."""
