// Skeleton: the LocalCluster sample host is being built (issue 7).
System.Console.Error.WriteLine("NearML.Samples.LocalCluster: not built yet");
return 2;
