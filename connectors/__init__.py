"""Everything that talks to the outside: local stack, Postgres sink, Redis read model, SDK."""
