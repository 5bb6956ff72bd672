"""REST routes: publishing, the head cursor and the operational endpoints."""
