import IPC

public typealias IPCBusClient = IPC.BusClient
