"""Use cases, one module per aggregate; `service.BoardsService` puts them together."""
