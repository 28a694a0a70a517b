// Process tests start several real processes each and would only fight for the two cores if run in parallel.
[assembly: DoNotParallelize]
