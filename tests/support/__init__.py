"""Test support for cutq: local stand-ins for cloud services, speaking their real protocols."""
