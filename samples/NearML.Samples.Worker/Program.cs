// Skeleton: the Worker sample host is being built (issue 7).
System.Console.Error.WriteLine("NearML.Samples.Worker: not built yet");
return 2;
