"""jointly.protocols.psi."""
