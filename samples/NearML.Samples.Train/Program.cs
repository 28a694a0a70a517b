// Placeholder until the training sample lands with the engine (issue 2).
Console.Error.WriteLine("The training sample is being built; see README.md.");
return 1;
