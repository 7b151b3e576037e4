"""The runtime every Shequtong service shares: settings, logs, telemetry, gRPC, auth, data, events."""
