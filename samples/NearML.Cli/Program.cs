using System.CommandLine;
using NearML.Cli.Commands;

// `nearml`: the NearML operator CLI. Each verb group lives in Commands/<Name>Command.cs and is added here.
var root = new RootCommand("NearML operator tools");
root.Subcommands.Add(AttestCommand.Create());
return root.Parse(args).Invoke();
