"""Traffic: scenarios (arrivals, request sizes, token lengths, SLOs) and the request streams they generate."""
