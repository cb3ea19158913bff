"""RQ job functions and the periodic schedule. Jobs reach data through db/ only."""
