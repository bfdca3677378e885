"""Tables and figures rebuilt from run directories alone."""
