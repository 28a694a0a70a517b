// Skeleton: the Coordinator sample host is being built (issue 7).
System.Console.Error.WriteLine("NearML.Samples.Coordinator: not built yet");
return 2;
