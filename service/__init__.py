"""Herald: real-time event delivery over WebSocket, SSE and long polling."""

__version__ = "0.1.0"
