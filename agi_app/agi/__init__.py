"""FastAGI hooks the dialplan calls (identify, route, status), served by `hotline serve` over panoramisk."""
