"""Radio formulas shared by the worlds (free-space mean gain, Rayleigh fading, Shannon rate), SI units."""
