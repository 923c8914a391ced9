//! Cross-service flows (see tests/flows).
