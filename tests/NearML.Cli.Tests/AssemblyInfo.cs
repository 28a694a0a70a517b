// Each test starts short-lived child processes; two cores are shared by everything.
[assembly: DoNotParallelize]
