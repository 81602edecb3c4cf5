"""Cost: price tables (`tables`), and FC's bill for a day of traffic against a GPU server
(`model`). Prices are as published; check your console."""
