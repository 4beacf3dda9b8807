"""MLThon's basic types: enums, exact decimal prices and quantities, instruments."""
